-- Subscriptions (issue #17): an authority involved with a person is told
-- when another authority starts, changes, ends or withdraws a relationship
-- with them. `body` is the JSON of the domain subscription
-- (hub::model::Subscription); `ended_at` and `end_reason` are set once, when
-- it ends (unsubscribed, or the subscriber's own relationship ended or was
-- withdrawn). `ends_on` is the last day it is current (YYYY-MM-DD).
CREATE TABLE subscriptions (
    subscription_id TEXT NOT NULL PRIMARY KEY,
    subscriber      TEXT NOT NULL,
    nhs_number      TEXT NOT NULL,
    ends_on         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    ended_at        TEXT,
    end_reason      TEXT,
    body            TEXT NOT NULL
);

-- Matching at publish: one indexed lookup per published subject, current
-- subscriptions only.
CREATE INDEX subscriptions_by_subject ON subscriptions (nhs_number, ends_on)
    WHERE ended_at IS NULL;

-- A subscriber's own: listing, duplicates, and ending them when its own
-- relationship with the person ends.
CREATE INDEX subscriptions_by_subscriber ON subscriptions (subscriber, nhs_number);
