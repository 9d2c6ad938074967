-- The MariaDB pair's tables, created on the source and replicated to the
-- target by MariaDB's own replication, like every later write; then
-- target.sql gives the replica its own types.
CREATE DATABASE shop;
USE shop;
CREATE TABLE customers (
    id INT PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    email VARCHAR(200)
);
CREATE TABLE orders (
    id INT PRIMARY KEY,
    customer_id INT NOT NULL,
    total DECIMAL(10, 2) NOT NULL,
    status VARCHAR(20) NOT NULL,
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
);
INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', 'grace@example.com'), (3, 'Edsger', NULL);
INSERT INTO orders (id, customer_id, total, status) VALUES (1, 1, 10.50, 'new'), (2, 2, 99.99, 'paid'), (3, 3, 5.00, 'new');
-- Debezium's signalling table (execute-snapshot re-reads). Replication
-- leaves it out: target.sql creates the replica's own.
CREATE TABLE debezium_signal (
    id VARCHAR(42) PRIMARY KEY,
    type VARCHAR(32) NOT NULL,
    data VARCHAR(2048) NULL
);
