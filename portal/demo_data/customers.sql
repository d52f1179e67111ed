-- The demo customer database (SQLite), created by `flask seed-demo` in the instance folder.
-- Linked like a small shop: orders point at their customer and shipping address; a customer has a
-- home address. The dataset in sqlite_example.yml describes it for automated collection (SPEC S5).

CREATE TABLE addresses (
    id INTEGER PRIMARY KEY,
    street TEXT NOT NULL,
    city TEXT NOT NULL,
    zip TEXT NOT NULL
);

CREATE TABLE customer (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    phone TEXT,
    address_id INTEGER REFERENCES addresses (id),
    created_at TEXT NOT NULL
);

CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customer (id),
    shipping_address_id INTEGER REFERENCES addresses (id),
    total_cents INTEGER NOT NULL,
    placed_at TEXT NOT NULL
);

INSERT INTO addresses (id, street, city, zip) VALUES
    (1, '123 Example Street', 'New York', '10001'),
    (2, '4 Example Lane', 'Brooklyn', '11201'),
    (3, '77 Sample Road', 'Boston', '02108'),
    (4, '9 Demo Avenue', 'Chicago', '60601');

INSERT INTO customer (id, name, email, phone, address_id, created_at) VALUES
    (1, 'Jane Customer', 'customer-3@example.com', '+15550103333', 1, '2024-03-01T10:00:00'),
    (2, 'Jim Doe', 'Customer-4@Example.com', '+15550104444', 3, '2024-05-17T08:30:00'),
    (3, 'Alex Other', 'someone-else@example.com', '+15550109999', 4, '2024-06-02T14:45:00');

INSERT INTO orders (id, customer_id, shipping_address_id, total_cents, placed_at) VALUES
    ('ord_aaa-1', 1, 1, 2599, '2024-03-02T09:12:00'),
    ('ord_aaa-2', 1, 2, 1250, '2024-04-11T18:40:00'),
    ('ord_bbb-1', 2, 3, 9900, '2024-05-18T11:05:00'),
    ('ord_ccc-1', 3, 4, 450, '2024-06-03T16:20:00');
