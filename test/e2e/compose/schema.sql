-- The tables of both databases: the source's, and the target's, which
-- logical replication fills from the source (see subscribe.sh).
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
-- Debezium's signalling table: an incremental snapshot's watermarks go
-- through it, when cdcrecon asks a connector, over its Kafka signal
-- topic, to read chosen rows again.
CREATE TABLE debezium_signal (
    id varchar(42) PRIMARY KEY,
    type varchar(32) NOT NULL,
    data varchar(2048)
);
