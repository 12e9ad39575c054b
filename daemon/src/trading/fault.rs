//! Fault injection for the crash tests (`BOTAI_FAULT=<step>[:<n>]`): the
//! n-th order (1 by default) to reach `<step>` ends the process there, as a
//! SIGKILL would — no drain, no settlement, no unregistering; the kernel
//! closes its connections, so its worker slot and send gate are freed and its
//! claims can be taken over. The steps are the points of an order's life
//! where a crash leaves a different state behind:
//!
//! - `before_send`: claimed, funds reserved, the send permitted, nothing
//!   sent;
//! - `after_send`: the venue took the order, and the process dies before it
//!   reads the answer;
//! - `mid_fill`: the venue reported a partial fill; the rest still executes;
//! - `after_answer`: the order's final state is known, not yet recorded.
//!
//! Never set in production: it exists so the tests can stop an engine at
//! each step instead of at a random moment.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Result};

/// The exit status of a process ended by an injected fault.
pub const FAULT_EXIT: i32 = 86;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    BeforeSend,
    AfterSend,
    MidFill,
    AfterAnswer,
}

impl Step {
    const ALL: [Step; 4] = [Step::BeforeSend, Step::AfterSend, Step::MidFill, Step::AfterAnswer];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::BeforeSend => "before_send",
            Step::AfterSend => "after_send",
            Step::MidFill => "mid_fill",
            Step::AfterAnswer => "after_answer",
        }
    }
}

#[derive(Debug)]
pub struct Fault {
    step: Step,
    nth: u32,
    reached: AtomicU32,
}

impl Fault {
    /// `<step>` or `<step>:<n>`.
    pub fn parse(s: &str) -> Result<Fault> {
        let (name, nth) = match s.split_once(':') {
            Some((name, n)) => match n.trim().parse::<u32>() {
                Ok(n) if n >= 1 => (name.trim(), n),
                _ => bail!("BOTAI_FAULT={s}: the count after ':' must be a whole number from 1"),
            },
            None => (s.trim(), 1),
        };
        let Some(step) = Step::ALL.into_iter().find(|step| step.as_str() == name) else {
            let names: Vec<&str> = Step::ALL.iter().map(|s| s.as_str()).collect();
            bail!("BOTAI_FAULT={s}: the step must be one of {}", names.join(", "));
        };
        Ok(Fault { step, nth, reached: AtomicU32::new(0) })
    }

    /// Ends the process if this is the step and the count is reached.
    pub fn at(&self, step: Step, client_order_id: &str) {
        if step != self.step || self.reached.fetch_add(1, Ordering::SeqCst) + 1 != self.nth {
            return;
        }
        // Straight to stderr: a log writer on another thread may never run again.
        eprintln!("BOTAI_FAULT: the process ends at {} of order {client_order_id}", step.as_str());
        std::process::exit(FAULT_EXIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps_and_counts_and_refuses_the_rest() {
        let f = Fault::parse("mid_fill:3").unwrap();
        assert_eq!((f.step, f.nth), (Step::MidFill, 3));
        let f = Fault::parse("before_send").unwrap();
        assert_eq!((f.step, f.nth), (Step::BeforeSend, 1));
        for bad in ["", "before", "after_send:0", "after_send:x", "after_answer:-1"] {
            assert!(Fault::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn other_steps_and_earlier_orders_pass() {
        let f = Fault::parse("after_send:2").unwrap();
        f.at(Step::BeforeSend, "a");
        f.at(Step::AfterSend, "a"); // the first: passes
        f.at(Step::MidFill, "a");
        assert_eq!(f.reached.load(Ordering::SeqCst), 1);
    }
}
