-- The notifications service's own tables: read models of other services' events, recipients and
-- their preferences, and the delivery ledger that is also the durable send queue.

-- Read models of the catalog (kept from catalog.campaigns.v1 and catalog.sessions.v1).
CREATE TABLE campaigns (
    campaign_id uuid PRIMARY KEY,
    revision integer NOT NULL,
    slug text NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    starts_on date NOT NULL,
    ends_on date NOT NULL,
    time_zone text NOT NULL,
    status text NOT NULL,
    discreet boolean NOT NULL DEFAULT false,
    reminder_offsets_minutes integer[] NOT NULL DEFAULT '{1440,60}'
);

CREATE TABLE focus_days (
    focus_day_id uuid PRIMARY KEY,
    campaign_id uuid NOT NULL,
    revision integer NOT NULL,
    day date NOT NULL,
    title text NOT NULL,
    description text NOT NULL DEFAULT ''
);
CREATE INDEX focus_days_campaign ON focus_days (campaign_id, day);

CREATE TABLE resources (
    resource_id uuid PRIMARY KEY,
    campaign_id uuid NOT NULL,
    revision integer NOT NULL,
    kind text NOT NULL,
    title text NOT NULL,
    audience text[] NOT NULL DEFAULT '{}',
    url text NOT NULL,
    locale text NOT NULL DEFAULT 'en'
);
CREATE INDEX resources_campaign ON resources (campaign_id);

CREATE TABLE sessions (
    session_id uuid PRIMARY KEY,
    campaign_id uuid NOT NULL,
    revision integer NOT NULL,
    kind text NOT NULL,
    title text NOT NULL,
    description text NOT NULL DEFAULT '',
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    time_zone text NOT NULL,
    display_time_zones text[] NOT NULL DEFAULT '{}',
    audience text[] NOT NULL DEFAULT '{}',
    join_url text,
    status text NOT NULL,
    -- Calendar SEQUENCE: never lower than what attendees already hold.
    sequence integer NOT NULL DEFAULT 0
);
CREATE INDEX sessions_campaign ON sessions (campaign_id, starts_at);

-- Recipients: contact details from registration.registrants.v1 (the only personal data here).
CREATE TABLE recipients (
    recipient_id uuid PRIMARY KEY,
    email text NOT NULL,
    name text,
    role text NOT NULL,
    locale text NOT NULL DEFAULT 'en',
    time_zone text,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- Erased people: an opaque id only, so late or replayed events about them change nothing.
CREATE TABLE erased_recipients (
    recipient_id uuid PRIMARY KEY,
    erased_at timestamptz NOT NULL
);

-- Campaign sign-ups with the consent each person gave (from registration.outcomes.v1).
CREATE TABLE signups (
    recipient_id uuid NOT NULL,
    campaign_id uuid NOT NULL,
    signup_id uuid NOT NULL,
    role text NOT NULL,
    consent_invitations boolean NOT NULL,
    consent_giveaways boolean NOT NULL,
    consent_news boolean NOT NULL,
    PRIMARY KEY (recipient_id, campaign_id)
);
CREATE INDEX signups_invitable ON signups (campaign_id) WHERE consent_invitations;

CREATE TABLE registrations (
    registration_id uuid PRIMARY KEY,
    recipient_id uuid NOT NULL,
    session_id uuid NOT NULL,
    campaign_id uuid NOT NULL,
    partner_id uuid,
    status text NOT NULL CHECK (status IN ('confirmed', 'waitlisted', 'cancelled')),
    waitlist_position integer
);
CREATE INDEX registrations_session ON registrations (session_id, status);
CREATE INDEX registrations_recipient ON registrations (recipient_id);

-- Opt-outs per purpose, recorded by the preferences page and one-click unsubscribe.
CREATE TABLE opt_outs (
    recipient_id uuid NOT NULL,
    purpose text NOT NULL,
    opted_out_at timestamptz NOT NULL,
    PRIMARY KEY (recipient_id, purpose)
);

-- Partners that asked for signed webhooks of their submissions' outcomes.
CREATE TABLE webhook_endpoints (
    partner_id uuid PRIMARY KEY,
    url text NOT NULL,
    signing_secret text NOT NULL,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The delivery ledger and send queue. One row per (recipient, kind, subject), written before
-- the send; its id (derived from that triple) is the email's Message-ID. A sender claims due
-- rows with FOR UPDATE SKIP LOCKED and marks them `sending` in a committed transaction before
-- it talks to the SMTP server, so a crash mid-send leaves a row that says so.
CREATE TABLE deliveries (
    delivery_id uuid PRIMARY KEY,
    recipient_id uuid NOT NULL,
    kind text NOT NULL,
    subject_ref text NOT NULL,
    channel text NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'webhook')),
    purpose text NOT NULL,
    campaign_id uuid,
    session_id uuid,
    registration_id uuid,
    offset_minutes integer,
    sequence integer,
    payload jsonb,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'unknown', 'dropped')),
    due_at timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    claimed_at timestamptz,
    finished_at timestamptz,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (recipient_id, kind, subject_ref)
);
-- What the sender scans: pending rows by due time.
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE state = 'pending';
CREATE INDEX deliveries_in_doubt ON deliveries (claimed_at) WHERE state IN ('sending', 'unknown');
CREATE INDEX deliveries_session ON deliveries (session_id, kind) WHERE session_id IS NOT NULL;
CREATE INDEX deliveries_registration ON deliveries (registration_id)
    WHERE registration_id IS NOT NULL;
CREATE INDEX deliveries_recipient_pending ON deliveries (recipient_id) WHERE state = 'pending';
