-- The source database, after schema.sql: a few rows (so that Debezium's
-- snapshot creates the tables' topics), published for the target's
-- subscription.
INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', 'grace@example.com'), (3, 'Edsger', NULL);
INSERT INTO orders (id, customer_id, total, status) VALUES (1, 1, 10.50, 'new'), (2, 2, 99.99, 'paid'), (3, 3, 5.00, 'new');
CREATE PUBLICATION shop_pub FOR TABLE customers, orders;
