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
