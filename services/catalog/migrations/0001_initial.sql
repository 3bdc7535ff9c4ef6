-- The catalog's own tables: organizations, campaigns, focus days, sessions and resources.
-- Every row carries `revision`, the version of the aggregate its last event announced.

CREATE TABLE organizations (
    id uuid PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('school', 'campus', 'partner', 'nonprofit')),
    name text NOT NULL CHECK (name <> ''),
    region text,
    time_zone text NOT NULL,
    revision integer NOT NULL CHECK (revision >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX organizations_listing ON organizations (name, id);

CREATE TABLE campaigns (
    id uuid PRIMARY KEY,
    slug text NOT NULL UNIQUE,
    name text NOT NULL CHECK (name <> ''),
    description text NOT NULL DEFAULT '',
    starts_on date NOT NULL,
    ends_on date NOT NULL,
    time_zone text NOT NULL,
    status text NOT NULL CHECK (status IN ('draft', 'published', 'archived')),
    host_organization_id uuid REFERENCES organizations (id),
    questions jsonb NOT NULL DEFAULT '[]'::jsonb,
    discreet boolean NOT NULL DEFAULT false,
    reminder_offsets_minutes integer[] NOT NULL DEFAULT '{1440,60}',
    revision integer NOT NULL CHECK (revision >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_on >= starts_on)
);
CREATE INDEX campaigns_listing ON campaigns (starts_on, id);

CREATE TABLE focus_days (
    id uuid PRIMARY KEY,
    campaign_id uuid NOT NULL REFERENCES campaigns (id),
    day date NOT NULL,
    title text NOT NULL CHECK (title <> ''),
    description text NOT NULL DEFAULT '',
    revision integer NOT NULL CHECK (revision >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX focus_days_listing ON focus_days (campaign_id, day, id);

CREATE TABLE sessions (
    id uuid PRIMARY KEY,
    campaign_id uuid NOT NULL REFERENCES campaigns (id),
    focus_day_id uuid REFERENCES focus_days (id),
    kind text NOT NULL CHECK (
        kind IN ('webinar', 'training', 'workshop', 'speaking_engagement', 'in_person_event')
    ),
    title text NOT NULL CHECK (title <> ''),
    description text NOT NULL DEFAULT '',
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    time_zone text NOT NULL,
    display_time_zones text[] NOT NULL DEFAULT '{}',
    -- NULL means unlimited. A cut below the confirmed count is the registration service's to resolve.
    capacity integer CHECK (capacity >= 0),
    audience text[] NOT NULL DEFAULT '{}',
    registration_opens_at timestamptz,
    registration_closes_at timestamptz,
    -- Only confirmed registrants ever receive it.
    join_url text,
    status text NOT NULL CHECK (status IN ('scheduled', 'rescheduled', 'cancelled')),
    sequence integer NOT NULL DEFAULT 0 CHECK (sequence >= 0),
    revision integer NOT NULL CHECK (revision >= 1),
    cancellation_reason text,
    cancelled_at timestamptz,
    previous_starts_at timestamptz,
    previous_ends_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL))
);
CREATE INDEX sessions_listing ON sessions (starts_at, id);
CREATE INDEX sessions_by_campaign ON sessions (campaign_id, starts_at, id);
CREATE INDEX sessions_by_focus_day ON sessions (focus_day_id) WHERE focus_day_id IS NOT NULL;

CREATE TABLE resources (
    id uuid PRIMARY KEY,
    campaign_id uuid NOT NULL REFERENCES campaigns (id),
    kind text NOT NULL CHECK (kind <> ''),
    title text NOT NULL CHECK (title <> ''),
    url text NOT NULL,
    audience text[] NOT NULL DEFAULT '{}',
    locale text NOT NULL DEFAULT 'en',
    revision integer NOT NULL CHECK (revision >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX resources_listing ON resources (campaign_id, title, id);
