-- uuid_v7() without text round trips: the same layout (48-bit Unix milliseconds, version 7,
-- RFC 4122 variant, random rest), built from the bytes of a random v4 UUID. Every new lead takes
-- one, so on a bulk merge the text version (hex, lpad, two replace/substr, a cast) cost about as
-- much as the rest of the id column's work.
CREATE OR REPLACE FUNCTION uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$
    -- gen_random_uuid() has version 4 (0100) in bits 52-55 and the variant already set; setting
    -- bits 52 and 53 makes the version 0111
    SELECT encode(set_bit(set_bit(
               overlay(uuid_send(gen_random_uuid())
                       PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                       FROM 1 FOR 6),
               52, 1), 53, 1), 'hex')::uuid
$$;
