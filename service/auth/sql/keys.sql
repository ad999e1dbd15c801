-- API keys: issued, verified, listed, revoked (service/auth/repository.py).

-- name: insert_key
INSERT INTO api_keys (id, name, prefix, key_hash, scopes)
VALUES (%(id)s, %(name)s, %(prefix)s, %(key_hash)s, CAST(%(scopes)s AS text[]))
RETURNING id, name, prefix, scopes, created_at, last_used_at, revoked_at;

-- name: touch_key
-- One round trip per verification: find the live key and note that it was used.
UPDATE api_keys SET last_used_at = now()
WHERE key_hash = %(key_hash)s AND revoked_at IS NULL
RETURNING id, name, prefix, scopes;

-- name: list_keys
SELECT id, name, prefix, scopes, created_at, last_used_at, revoked_at
FROM api_keys
ORDER BY created_at, prefix;

-- name: find_keys
SELECT id, name, prefix, scopes, created_at, last_used_at, revoked_at
FROM api_keys
WHERE id::text = %(ident)s OR prefix = %(ident)s;

-- name: revoke_key
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = %(id)s
RETURNING id, name, prefix, scopes, created_at, last_used_at, revoked_at;

-- name: bootstrap_lock
-- Serialises concurrent first starts, so exactly one bootstrap admin key is made.
SELECT pg_advisory_xact_lock(hashtextextended('reeltrace:bootstrap-admin', 0));

-- name: has_admin
SELECT EXISTS (SELECT 1 FROM api_keys WHERE 'admin' = ANY(scopes) AND revoked_at IS NULL) AS present;
