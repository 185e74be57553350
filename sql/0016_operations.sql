-- Dead-letter redrive: a letter is retried with backoff and becomes `dead` after its last try.
ALTER TABLE pipeline_dlq DROP CONSTRAINT pipeline_dlq_status_check;
ALTER TABLE pipeline_dlq ADD CONSTRAINT pipeline_dlq_status_check
    CHECK (status IN ('pending', 'redriven', 'resolved', 'discarded', 'dead'));
ALTER TABLE pipeline_dlq ADD COLUMN next_attempt_at timestamptz;
ALTER TABLE pipeline_dlq ADD COLUMN last_error text;
CREATE INDEX pipeline_dlq_due_idx ON pipeline_dlq (stage, next_attempt_at) WHERE status = 'pending';
