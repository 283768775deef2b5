-- Issue 28: admins manage accounts. `disabled_at` (Unix milliseconds) is set while an admin has
-- disabled the account: it cannot sign in and its sessions were ended. `must_change_password`
-- is 1 after an admin set a temporary password: until the user chooses a new one, the account
-- can only change its password. BIGINT 0/1 so the same queries run on both backends.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
ALTER TABLE users ADD COLUMN must_change_password BIGINT NOT NULL DEFAULT 0;
