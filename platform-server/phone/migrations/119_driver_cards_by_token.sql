-- Pay by phone looks up every sale's card among the cards held, verified or claimed, once per
-- ingest batch (thousands of tokens at a time). The only index by token alone covers verified
-- cards, so that look-up read the whole table: about 15 ms a batch at 100,000 cards. By token
-- over every card still held, it is a probe per sale.
CREATE INDEX driver_cards_held_token ON driver_cards (token) WHERE removed_at IS NULL;
