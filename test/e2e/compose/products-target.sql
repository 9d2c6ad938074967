-- The target's products table: products-source.sql's, with a replica's
-- types (see there).
CREATE TABLE products (
    id integer PRIMARY KEY,
    name text NOT NULL,
    price numeric(12, 4) NOT NULL,
    attrs jsonb NOT NULL,
    added_at timestamptz(3) NOT NULL,
    description text NOT NULL
);
