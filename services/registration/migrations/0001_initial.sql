-- The registration service's own tables. The kit adds outbox, outbox_shards and inbox.

-- Partner accounts ------------------------------------------------------------------------------
-- Only the API key's SHA-256 is stored. The signing secret is never stored: it is derived as
-- HMAC-SHA256(partner master key, partner id and secret_version), so rotating it means bumping
-- secret_version.
CREATE TABLE partners (
    partner_id uuid PRIMARY KEY,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    api_key_sha256 bytea NOT NULL UNIQUE,
    secret_version integer NOT NULL DEFAULT 1 CHECK (secret_version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);

-- The campaigns (by slug) a partner may register people for.
CREATE TABLE partner_campaigns (
    partner_id uuid NOT NULL REFERENCES partners (partner_id) ON DELETE CASCADE,
    campaign_slug text NOT NULL,
    PRIMARY KEY (partner_id, campaign_slug)
);

-- Read model of the catalog ---------------------------------------------------------------------
-- Built from catalog.campaigns.v1 and catalog.sessions.v1; each row keeps the revision it last
-- applied so replays and late events change nothing.
CREATE TABLE campaigns (
    campaign_id uuid PRIMARY KEY,
    slug text NOT NULL,
    status text NOT NULL,
    starts_on date NOT NULL,
    ends_on date NOT NULL,
    time_zone text NOT NULL,
    questions jsonb NOT NULL DEFAULT '[]'::jsonb,
    revision integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_by_slug ON campaigns (slug, revision DESC);

CREATE TABLE focus_days (
    focus_day_id uuid PRIMARY KEY,
    campaign_id uuid NOT NULL,
    day date NOT NULL,
    revision integer NOT NULL
);

-- A session: its descriptive state, its status and its capacity each carry the revision that
-- last set them (a cancellation or a capacity change can arrive before the session itself).
-- The seat counters live on the same row: taking a seat is an update of this row, under its
-- lock, in the transaction that records the registration.
CREATE TABLE sessions (
    session_id uuid PRIMARY KEY,
    campaign_id uuid NOT NULL,
    focus_day_id uuid,
    starts_at timestamptz,
    ends_at timestamptz,
    audience text[] NOT NULL DEFAULT '{}',
    registration_opens_at timestamptz,
    registration_closes_at timestamptz,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'scheduled', 'rescheduled', 'cancelled')),
    state_revision integer NOT NULL DEFAULT 0,
    status_revision integer NOT NULL DEFAULT 0,
    capacity_revision integer NOT NULL DEFAULT 0,
    capacity integer CHECK (capacity IS NULL OR capacity >= 0),
    confirmed integer NOT NULL DEFAULT 0 CHECK (confirmed >= 0),
    waitlisted integer NOT NULL DEFAULT 0 CHECK (waitlisted >= 0),
    -- Waitlist order: new people get waitlist_tail + 1, people moved back by a capacity cut
    -- get ordinals below waitlist_head. Ordinals are never reused.
    waitlist_tail bigint NOT NULL DEFAULT 0,
    waitlist_head bigint NOT NULL DEFAULT 1,
    -- Never oversold, whatever the code does: the database refuses it.
    CONSTRAINT sessions_never_oversold CHECK (capacity IS NULL OR confirmed <= capacity)
);

-- Registrants and what they registered for -----------------------------------------------------
-- Personal data lives here and only here. Erasure clears every personal column, keeps the row
-- (so anonymous counts keep adding up) and stamps erased_at.
CREATE TABLE registrants (
    registrant_id uuid PRIMARY KEY,
    email_sha256 text UNIQUE,
    email text,
    name text,
    pronouns text,
    role text,
    age_band text,
    school text,
    organization text,
    time_zone text,
    locale text,
    details_sha256 text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    erased_at timestamptz,
    CHECK (erased_at IS NULL OR (email IS NULL AND email_sha256 IS NULL AND name IS NULL))
);

-- One sign-up per person per campaign.
CREATE TABLE signups (
    signup_id uuid PRIMARY KEY,
    campaign_id uuid NOT NULL,
    registrant_id uuid NOT NULL REFERENCES registrants (registrant_id),
    partner_id uuid NOT NULL,
    role text NOT NULL,
    school text,
    consent_invitations boolean NOT NULL,
    consent_giveaways boolean NOT NULL,
    consent_news boolean NOT NULL,
    answers jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT signups_one_per_person UNIQUE (campaign_id, registrant_id)
);

-- One live registration per person per session; a cancelled one stays for the counts.
CREATE TABLE registrations (
    registration_id uuid PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (session_id),
    campaign_id uuid NOT NULL,
    focus_day_id uuid,
    registrant_id uuid NOT NULL REFERENCES registrants (registrant_id),
    partner_id uuid NOT NULL,
    submission_id text NOT NULL,
    role text NOT NULL,
    school text,
    status text NOT NULL CHECK (status IN ('confirmed', 'waitlisted', 'cancelled')),
    waitlist_ordinal bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    confirmed_at timestamptz,
    cancelled_at timestamptz,
    cancel_reason text,
    CHECK ((status = 'waitlisted') = (waitlist_ordinal IS NOT NULL)),
    CHECK ((status = 'confirmed') = (confirmed_at IS NOT NULL))
);
CREATE UNIQUE INDEX registrations_one_live_per_person
    ON registrations (session_id, registrant_id) WHERE status <> 'cancelled';
CREATE UNIQUE INDEX registrations_waitlist_order
    ON registrations (session_id, waitlist_ordinal) WHERE status = 'waitlisted';
CREATE INDEX registrations_confirmed_order
    ON registrations (session_id, confirmed_at DESC) WHERE status = 'confirmed';
CREATE INDEX registrations_by_registrant ON registrations (registrant_id);
CREATE INDEX registrations_by_campaign ON registrations (campaign_id);

-- Submissions: the answer to each partner submission, by the partner's own id. Ids only.
CREATE TABLE submissions (
    partner_id uuid NOT NULL,
    submission_id text NOT NULL,
    event_id uuid NOT NULL,
    -- SHA-256 of the submission's canonical JSON: a repeat with another body is a duplicate id.
    body_sha256 text,
    source text NOT NULL CHECK (source IN ('kafka', 'http')),
    status text NOT NULL CHECK (status IN ('decided', 'rejected', 'erased')),
    registrant_id uuid,
    campaign_id uuid,
    outcome jsonb NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, submission_id)
);
CREATE INDEX submissions_by_registrant ON submissions (registrant_id);

-- HTTP intake ---------------------------------------------------------------------------------
-- A submission accepted over HTTP and waiting for the consumer. Its presence, with the same
-- partner and the SHA-256 of the exact envelope bytes, is what marks the envelope on the
-- submissions topic as already authenticated: partners cannot write this table.
CREATE TABLE intake (
    event_id uuid PRIMARY KEY,
    partner_id uuid NOT NULL,
    submission_id text NOT NULL,
    envelope_sha256 bytea NOT NULL,
    accepted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX intake_by_submission ON intake (partner_id, submission_id);

-- Idempotency-Key: same key and body give the stored response; another body gives 409.
CREATE TABLE idempotency_keys (
    partner_id uuid NOT NULL,
    idempotency_key text NOT NULL,
    request_sha256 bytea NOT NULL,
    status_code integer NOT NULL,
    response bytea NOT NULL,  -- the exact bytes answered, so a replay is byte for byte the same
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, idempotency_key)
);
