-- The W3C traceparent of the span that submitted the job, when tracing is on: each
-- attempt's span joins the submitter's trace.
ALTER TABLE jobs ADD COLUMN trace_context text;
