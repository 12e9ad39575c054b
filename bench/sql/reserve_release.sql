SELECT botai_release_reservation(botai_reserve_balance('bench', 'USDT', 1, 'bench'));
