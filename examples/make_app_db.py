#!/usr/bin/env python3
"""Regenerate examples/app.db: a small, deterministic shop database that scripts/nightly.rhai
backs up on a machine with no database server. Run: python3 examples/make_app_db.py"""
import os
import random
import sqlite3
import sys

path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "app.db")
if os.path.exists(path):
    os.remove(path)
rng = random.Random(42)
db = sqlite3.connect(path)
db.executescript(
    """
    PRAGMA journal_mode = DELETE;
    CREATE TABLE customers (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE,
        country TEXT NOT NULL, created_at TEXT NOT NULL);
    CREATE TABLE products (
        id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
        price_cents INTEGER NOT NULL, stock INTEGER NOT NULL);
    CREATE TABLE orders (
        id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
        status TEXT NOT NULL CHECK (status IN ('pending','paid','shipped','refunded')),
        total_cents INTEGER NOT NULL, created_at TEXT NOT NULL);
    CREATE TABLE order_items (
        order_id INTEGER NOT NULL REFERENCES orders(id), product_id INTEGER NOT NULL REFERENCES products(id),
        quantity INTEGER NOT NULL, price_cents INTEGER NOT NULL, PRIMARY KEY (order_id, product_id));
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY, actor TEXT NOT NULL, action TEXT NOT NULL, detail TEXT, created_at TEXT NOT NULL);
    CREATE INDEX orders_customer ON orders(customer_id);
    CREATE INDEX audit_created ON audit_log(created_at);
    """
)
first = ["Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger", "Radia"]
last = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen", "Dijkstra", "Perlman"]
countries = ["DE", "FR", "GB", "US", "NL", "SE", "ES", "IT", "PL", "JP"]
for i in range(1, 201):
    name = f"{rng.choice(first)} {rng.choice(last)}"
    db.execute(
        "INSERT INTO customers VALUES (?,?,?,?,?)",
        (i, name, f"{name.lower().replace(' ', '.')}.{i}@example.com", rng.choice(countries),
         f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00"),
    )
for i in range(1, 51):
    db.execute("INSERT INTO products VALUES (?,?,?,?,?)",
               (i, f"SKU-{i:04d}", f"Widget model {i}", rng.randint(199, 19999), rng.randint(0, 500)))
statuses = ["pending", "paid", "paid", "shipped", "shipped", "shipped", "refunded"]
for i in range(1, 1001):
    items = rng.sample(range(1, 51), rng.randint(1, 4))
    total = 0
    for p in items:
        q = rng.randint(1, 3)
        price = db.execute("SELECT price_cents FROM products WHERE id = ?", (p,)).fetchone()[0]
        total += q * price
        db.execute("INSERT INTO order_items VALUES (?,?,?,?)", (i, p, q, price))
    db.execute("INSERT INTO orders VALUES (?,?,?,?,?)",
               (i, rng.randint(1, 200), rng.choice(statuses), total,
                f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00"))
actions = ["login", "logout", "update_profile", "place_order", "refund"]
for i in range(1, 2001):
    db.execute("INSERT INTO audit_log VALUES (?,?,?,?,?)",
               (i, f"user{rng.randint(1, 200)}", rng.choice(actions), f"request {rng.getrandbits(32):08x}",
                f"202{rng.randint(3, 5)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:00:00"))
db.commit()
db.execute("VACUUM")
db.close()
print(f"wrote {path}")
