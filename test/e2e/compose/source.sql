-- The source database, after schema.sql: a few rows (so that Debezium's
-- snapshot creates the tables' topics), published for the target's
-- subscription.
INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', 'grace@example.com'), (3, 'Edsger', NULL);
INSERT INTO orders (id, customer_id, total, status) VALUES (1, 1, 10.50, 'new'), (2, 2, 99.99, 'paid'), (3, 3, 5.00, 'new');
-- Product 3's description is stored out of line (TOAST): an update of
-- another column sends it as unavailable.
INSERT INTO products VALUES
    (1, 'Lamp', 12.30, '{"watts": 40, "color": "red"}', '2026-11-21 10:00:00.123456+00', 'A lamp'),
    (2, 'Desk', 150.00, '{"legs": 4}', '2026-11-21 10:00:01.999999+00', 'A desk'),
    (3, 'Atlas', 45.00, '{"pages": 320}', '2026-11-21 10:00:02.5005+00', (SELECT string_agg(md5(g::text), ' ') FROM generate_series(1, 600) g));
CREATE PUBLICATION shop_pub FOR TABLE customers, orders, products;
