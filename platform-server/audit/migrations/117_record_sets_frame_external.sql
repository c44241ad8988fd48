-- A sealed frame is AES-GCM ciphertext: it never compresses, so PostgreSQL's attempt to compress
-- each frame too long to stay in its row (about 2 kB and more) is wasted work on every set ingest
-- keeps. Stored out of line as it is instead.
ALTER TABLE record_sets ALTER COLUMN frame SET STORAGE EXTERNAL;
