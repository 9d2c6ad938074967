-- The source's products table. The target's (products-target.sql) has
-- the types a real replica often has instead: a decimal at a larger
-- scale, jsonb for json, timestamps at millisecond precision (stored
-- rounded). description holds TOASTed text on some rows.
CREATE TABLE products (
    id integer PRIMARY KEY,
    name text NOT NULL,
    price numeric(10, 2) NOT NULL,
    attrs json NOT NULL,
    added_at timestamptz NOT NULL,
    description text NOT NULL
);
