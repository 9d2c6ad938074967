-- Run on the MariaDB replica once schema.sql has replicated: a replica's
-- types (replication converts each row to them) and its connector's own
-- signalling table. Writes on a replica go to a GTID domain of their own,
-- as MariaDB asks: in the replicated domain, the replica's own GTIDs
-- interleave with the source's, and Debezium's MariaDB support then takes
-- the schema it recorded for a position after the one it resumes from,
-- recovers no tables after a restart and fails on the next row event
-- ("schema isn't known to this connector").
SET SESSION gtid_domain_id = 2;
USE shop;
ALTER TABLE orders MODIFY total DECIMAL(12, 4) NOT NULL,
    MODIFY updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3);
CREATE TABLE debezium_signal (
    id VARCHAR(42) PRIMARY KEY,
    type VARCHAR(32) NOT NULL,
    data VARCHAR(2048) NULL
);
