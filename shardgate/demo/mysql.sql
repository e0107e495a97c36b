-- The demo's sample schema in MySQL/MariaDB, for keyspaces customer_mysql (sharded) and commerce_mysql.
-- section: sharded
CREATE TABLE customer (customer_id BIGINT NOT NULL PRIMARY KEY, email VARCHAR(128) NOT NULL, name VARCHAR(128))
    ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE corder (order_id BIGINT NOT NULL PRIMARY KEY, customer_id BIGINT NOT NULL, email VARCHAR(128),
                     sku VARCHAR(32) NOT NULL, price DECIMAL(10, 2) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
-- the reference table: a copy of commerce_mysql.product on every shard
CREATE TABLE product (sku VARCHAR(32) NOT NULL PRIMARY KEY, description VARCHAR(128), price DECIMAL(10, 2))
    ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
-- section: unsharded
CREATE TABLE product (sku VARCHAR(32) NOT NULL PRIMARY KEY, description VARCHAR(128), price DECIMAL(10, 2))
    ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
-- Vitess-style sequence tables: one row, id 0; the sample rows use the ids below next_id
CREATE TABLE customer_seq (id INT NOT NULL PRIMARY KEY, next_id BIGINT, cache BIGINT) ENGINE=InnoDB;
INSERT INTO customer_seq (id, next_id, cache) VALUES (0, 100, 100);
CREATE TABLE corder_seq (id INT NOT NULL PRIMARY KEY, next_id BIGINT, cache BIGINT) ENGINE=InnoDB;
INSERT INTO corder_seq (id, next_id, cache) VALUES (0, 1000, 100);
-- the consistent_lookup vindex corder_email_lookup: email -> keyspace id of the order's customer
CREATE TABLE corder_email_lookup (email VARCHAR(128) NOT NULL, keyspace_id VARBINARY(16) NOT NULL,
                                  PRIMARY KEY (email, keyspace_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
