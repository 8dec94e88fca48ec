-- Assets the vendor reports per client, and what each PSA connection holds of them.

-- The latest report of each asset. `fields` is the canonical text of what the PSA shows
-- (core::assets::AssetFields); `last_seen` is kept here only and never pushed.
CREATE TABLE assets (
    partner_id  TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    asset_id    TEXT NOT NULL,
    fields      TEXT NOT NULL,
    last_seen   BIGINT,
    received_at BIGINT NOT NULL,
    changed_at  BIGINT NOT NULL,
    PRIMARY KEY (partner_id, client_id, asset_id)
);

-- An asset in one connection's PSA: the record's id there and the fields last written to it.
-- A push is due where there is no row or `pushed` differs from the asset's `fields`.
CREATE TABLE asset_links (
    connection_id BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    partner_id    TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    asset_id      TEXT NOT NULL,
    psa_id        TEXT,
    pushed        TEXT,
    pushed_at     BIGINT,
    error         TEXT,
    attempted_at  BIGINT NOT NULL,
    PRIMARY KEY (connection_id, client_id, asset_id)
);

-- Per mapping: push this client's assets to the mapped company.
ALTER TABLE mappings ADD COLUMN push_assets BOOLEAN NOT NULL DEFAULT FALSE;
