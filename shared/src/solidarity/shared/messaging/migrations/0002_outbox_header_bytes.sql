-- Headers byte for byte. Kafka header values are any bytes, and names may hold a NUL; jsonb
-- refuses \u0000 and keeps only text, so a dead letter with such a header could not be
-- written (its consumer stuck) or came back altered. New rows keep each header's name (UTF-8)
-- and value (NULL for a null value) here, in order, and leave `headers` at '[]'.
--
-- Rows written before this migration (or by an instance of the previous version during an
-- upgrade) have NULL here and their headers in `headers`: the relay reads either, so nothing
-- is converted and the columns are added without rewriting the table. The other way round
-- does not hold: a relay of the previous version sends new rows without their headers, so
-- upgrade all of a service's instances together.
ALTER TABLE outbox
    ADD COLUMN header_names bytea[],
    ADD COLUMN header_values bytea[];
-- NOT VALID: checked for every new row, without scanning the rows already there (all NULL).
ALTER TABLE outbox ADD CONSTRAINT outbox_header_pairs CHECK (
    (header_names IS NULL) = (header_values IS NULL)
    AND cardinality(header_names) = cardinality(header_values)
) NOT VALID;
