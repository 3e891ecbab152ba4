-- RFC 7591 display metadata (client_uri, logo_uri, policy_uri, tos_uri, contacts, software_id,
-- software_version, application_type) as one JSON object (`domain::model::ClientDisplay`).
ALTER TABLE clients ADD COLUMN display TEXT NOT NULL DEFAULT '{}';
