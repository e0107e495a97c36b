-- The demo's sample schema, the same on every shard of the customer keyspace.
CREATE TABLE customer (customer_id BIGINT PRIMARY KEY, email VARCHAR(128) NOT NULL, name VARCHAR(128));
CREATE TABLE corder (order_id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, email VARCHAR(128),
                     sku VARCHAR(32) NOT NULL, price NUMERIC(10, 2) NOT NULL);
CREATE TABLE product (sku VARCHAR(32) PRIMARY KEY, description VARCHAR(128), price NUMERIC(10, 2));
