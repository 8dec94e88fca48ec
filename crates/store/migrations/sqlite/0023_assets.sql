-- Assets the vendor reports per client, and what each PSA connection holds of them.

-- The latest report of each asset. `fields` is the canonical text of what the PSA shows
-- (core::assets::AssetFields); `last_seen` is kept here only and never pushed.
CREATE TABLE assets (
    partner_id  TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    asset_id    TEXT NOT NULL,
    fields      TEXT NOT NULL,
    last_seen   INTEGER,
    received_at INTEGER NOT NULL,
    changed_at  INTEGER NOT NULL,
    PRIMARY KEY (partner_id, client_id, asset_id)
);

-- An asset in one connection's PSA: the record's id there and the fields last written to it.
-- A push is due where there is no row or `pushed` differs from the asset's `fields`.
CREATE TABLE asset_links (
    connection_id INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    partner_id    TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    asset_id      TEXT NOT NULL,
    psa_id        TEXT,
    pushed        TEXT,
    pushed_at     INTEGER,
    error         TEXT,
    attempted_at  INTEGER NOT NULL,
    PRIMARY KEY (connection_id, client_id, asset_id)
);

-- Per mapping: push this client's assets to the mapped company.
ALTER TABLE mappings ADD COLUMN push_assets INTEGER NOT NULL DEFAULT 0;
