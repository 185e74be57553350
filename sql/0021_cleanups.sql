-- A skip-trace email that is not an address (a blank inside, two @ ...). It never becomes the
-- lead's email or an alternative one; when the lead has no email, this code says why.
INSERT INTO verification_code_map (code, provider, channel, meaning, usable, suppress) VALUES
    ('BE03', 'batchdata', 'email', 'skip-trace email is not a well-formed address (e.g. a blank inside): not used',
     false, false)
ON CONFLICT (code) DO NOTHING;
