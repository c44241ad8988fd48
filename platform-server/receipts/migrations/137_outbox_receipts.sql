-- An e-mail in the outbox may carry a sale's receipt: the code of the record, from which the
-- adapter renders the PDF at delivery (the file is not kept twice).
ALTER TABLE outbox ADD COLUMN receipt_code text;
