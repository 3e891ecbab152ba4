-- Unredeemed codes and uncollected device approvals end with their sign-in session, the user's
-- password change and consent withdrawal (issue 10, finding 7): find them without a scan.
CREATE INDEX codes_pending_session ON codes(session_id) WHERE consumed_at_ms IS NULL;
CREATE INDEX codes_pending_user ON codes(user_id, client_id) WHERE consumed_at_ms IS NULL;
CREATE INDEX device_codes_approved_session ON device_codes(session_id) WHERE status = 'approved';
CREATE INDEX device_codes_approved_user ON device_codes(user_id, client_id) WHERE status = 'approved';
