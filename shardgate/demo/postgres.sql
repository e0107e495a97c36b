-- The demo's sample schema in PostgreSQL, for keyspaces customer (sharded) and commerce (unsharded).
-- section: sharded
CREATE TABLE customer (customer_id BIGINT PRIMARY KEY, email VARCHAR(128) NOT NULL, name VARCHAR(128));
CREATE TABLE corder (order_id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, email VARCHAR(128),
                     sku VARCHAR(32) NOT NULL, price NUMERIC(10, 2) NOT NULL);
-- the reference table: a copy of commerce.product on every shard
CREATE TABLE product (sku VARCHAR(32) PRIMARY KEY, description VARCHAR(128), price NUMERIC(10, 2));
-- section: unsharded
CREATE TABLE product (sku VARCHAR(32) PRIMARY KEY, description VARCHAR(128), price NUMERIC(10, 2));
-- Vitess-style sequence tables: one row, id 0; the sample rows use the ids below next_id
CREATE TABLE customer_seq (id INT PRIMARY KEY, next_id BIGINT, cache BIGINT);
INSERT INTO customer_seq (id, next_id, cache) VALUES (0, 100, 100);
CREATE TABLE corder_seq (id INT PRIMARY KEY, next_id BIGINT, cache BIGINT);
INSERT INTO corder_seq (id, next_id, cache) VALUES (0, 1000, 100);
-- the consistent_lookup vindex corder_email_lookup: email -> keyspace id of the order's customer
CREATE TABLE corder_email_lookup (email VARCHAR(128) NOT NULL, keyspace_id BYTEA NOT NULL,
                                  PRIMARY KEY (email, keyspace_id));
