//! The key of an advisory lock named by strings (a worker slot, a signal's
//! cooldown, a balance snapshot): 32-bit FNV-1a over the parts with 0x1f
//! between them. The extension takes its locks with it; a client that must
//! name the same lock (a test holding a slot) computes the same key here.

/// 32-bit FNV-1a over `parts`, 0x1f between them.
pub fn name_key(parts: &[&str]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x0100_0193);
        }
        for b in part.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_with_a_separator() {
        // FNV-1a of "" and "a" (the published test vectors).
        assert_eq!(name_key(&[""]), 0x811c_9dc5);
        assert_eq!(name_key(&["a"]), 0xe40c_292c);
        // The separator keeps ("ab", "c") apart from ("a", "bc").
        assert_ne!(name_key(&["ab", "c"]), name_key(&["a", "bc"]));
    }
}
