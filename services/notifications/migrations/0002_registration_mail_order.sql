-- A registration's mails go out in order (confirmation or waitlist notice, reminders, update,
-- cancellation), one at a time: the sender holds a registration's delivery while an earlier
-- one of the same registration is still pending (a 4xx retry included), `sending` (perhaps on
-- an instance that died) or `unknown`. Invitations, welcomes and webhooks (no registration)
-- are not held.
--
-- "Earlier" is the place a mail was planned with: `first_due_at` (the `due_at` it was planned
-- with; a retry or a requeue moves `due_at`, never this), then `ordinal` (insertion order, for
-- mails planned for the same moment, such as two updates applied in one batch).
CREATE SEQUENCE deliveries_ordinal_seq AS bigint;

-- Neither column has a default that needs computing for the rows already there: no rewrite.
ALTER TABLE deliveries ADD COLUMN first_due_at timestamptz, ADD COLUMN ordinal bigint;
ALTER SEQUENCE deliveries_ordinal_seq OWNED BY deliveries.ordinal;

-- Only the open mails of a registration ever take part in the order: give them a place. One
-- already tried (a retry, `sending`, `unknown`) went before the ones never tried.
UPDATE deliveries d
SET first_due_at = o.first_due_at, ordinal = o.n
FROM (
    SELECT delivery_id, first_due_at,
           row_number() OVER (ORDER BY first_due_at, created_at, delivery_id) AS n
    FROM (
        SELECT delivery_id, created_at,
               CASE WHEN attempts > 0 THEN LEAST(created_at, due_at) ELSE due_at END
                   AS first_due_at
        FROM deliveries
        WHERE registration_id IS NOT NULL AND state IN ('pending', 'sending', 'unknown')
    ) open_mail
) o
WHERE d.delivery_id = o.delivery_id;

SELECT setval('deliveries_ordinal_seq', GREATEST((SELECT max(ordinal) FROM deliveries), 1));
ALTER TABLE deliveries ALTER COLUMN ordinal SET DEFAULT nextval('deliveries_ordinal_seq');

-- What the claim asks for each due mail of a registration: "is an earlier one still open?"
-- Open mails only (a few per registration), so the probe stays a short index scan however
-- large the ledger grows; `state` is included so it needs no heap visit.
CREATE INDEX deliveries_registration_open
    ON deliveries (registration_id, first_due_at, ordinal) INCLUDE (state)
    WHERE registration_id IS NOT NULL AND state IN ('pending', 'sending', 'unknown');
