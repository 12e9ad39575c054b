SELECT botai_rate_acquire('bench', 'default');
