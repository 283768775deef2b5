-- Accounts. Ids are UUID strings and times are Unix milliseconds so the same queries run on
-- SQLite and Postgres through sqlx's Any driver.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at BIGINT NOT NULL
);
