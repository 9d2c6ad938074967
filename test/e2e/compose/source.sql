-- The source database: two tables with a few rows (so that Debezium's
-- snapshot creates their topics), published for the target's subscription.
CREATE TABLE customers (
    id integer PRIMARY KEY,
    name text NOT NULL,
    email text
);
CREATE TABLE orders (
    id integer PRIMARY KEY,
    customer_id integer NOT NULL,
    total numeric(10, 2) NOT NULL,
    status text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', 'grace@example.com'), (3, 'Edsger', NULL);
INSERT INTO orders (id, customer_id, total, status) VALUES (1, 1, 10.50, 'new'), (2, 2, 99.99, 'paid'), (3, 3, 5.00, 'new');
CREATE PUBLICATION shop_pub FOR TABLE customers, orders;
