-- The closed days' totals per area (history/rollup.ts writes them with each day's per-meter totals): a
-- week of the city's revenue per area read 210,000 per-meter rows of a 10,000-meter city and summed
-- them on asking; it now reads a few hundred. A sale counts in the area its meter was in when its day
-- was rolled up, so moving a meter later does not rewrite the revenue of the areas' past days.
CREATE TABLE daily_area_sales (
  day date NOT NULL,
  area text,
  card_type smallint NOT NULL,
  currency smallint NOT NULL,
  payments bigint NOT NULL,
  minutes bigint NOT NULL,
  amount bigint NOT NULL
);

CREATE INDEX daily_area_sales_by_day ON daily_area_sales (day);

INSERT INTO daily_area_sales (day, area, card_type, currency, payments, minutes, amount)
SELECT s.day, m.area, s.card_type, s.currency, sum(s.payments), sum(s.minutes), sum(s.amount)
  FROM daily_sales s JOIN meters m ON m.id = s.meter_id
 GROUP BY s.day, m.area, s.card_type, s.currency;
