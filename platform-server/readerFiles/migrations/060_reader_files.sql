-- Reader files (management service 414d): the card reader's update documents, settings and
-- firmware as administrators uploaded them. A name keeps one kind, and its versions only grow, so a
-- meter replaces a file only with a newer one. Reader firmware is stored only with the release
-- key's signature, checked on upload.

CREATE TABLE reader_files (
  name text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,31}$'),
  version bigint NOT NULL CHECK (version BETWEEN 1 AND 4294967295),
  kind text NOT NULL CHECK (kind IN ('document', 'settings', 'reader-firmware')),
  content bytea NOT NULL,
  sha256 bytea NOT NULL CHECK (length(sha256) = 32),
  signature bytea CHECK (signature IS NULL OR length(signature) = 64),
  note text,
  uploaded_by text NOT NULL,
  uploaded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, version),
  CHECK ((kind = 'reader-firmware') = (signature IS NOT NULL))
);
