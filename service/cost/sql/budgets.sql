-- Guild budgets (service/cost/repository.py).

-- name: set_guild_budget
INSERT INTO guild_budgets AS b (guild_id, daily_usd, monthly_usd, updated_at)
VALUES (%(guild_id)s, CAST(%(daily)s AS numeric), CAST(%(monthly)s AS numeric), now())
ON CONFLICT (guild_id) DO UPDATE SET
    daily_usd = CASE WHEN %(set_daily)s THEN EXCLUDED.daily_usd ELSE b.daily_usd END,
    monthly_usd = CASE WHEN %(set_monthly)s THEN EXCLUDED.monthly_usd ELSE b.monthly_usd END,
    updated_at = now()
RETURNING guild_id, daily_usd, monthly_usd, updated_at;

-- name: unset_guild_budget
DELETE FROM guild_budgets WHERE guild_id = %(guild_id)s RETURNING guild_id;

-- name: list_guild_budgets
-- Every guild with an override or with requests this month, with both periods' spend.
WITH bounds AS (
    SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day_start,
           date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS month_start
), spend AS (
    SELECT v.guild_id,
           coalesce(sum(
    CASE WHEN v.status IN ('completed', 'failed', 'timeout')
         THEN coalesce(v.cost_usd, v.estimated_cost_usd, 0)
         ELSE greatest(coalesce(v.cost_usd, 0), coalesce(v.estimated_cost_usd, 0)) END
) FILTER (WHERE v.created_at >= bounds.day_start), 0) AS spent_today,
           coalesce(sum(
    CASE WHEN v.status IN ('completed', 'failed', 'timeout')
         THEN coalesce(v.cost_usd, v.estimated_cost_usd, 0)
         ELSE greatest(coalesce(v.cost_usd, 0), coalesce(v.estimated_cost_usd, 0)) END
), 0) AS spent_month
    FROM video_requests v, bounds
    WHERE v.guild_id IS NOT NULL AND v.created_at >= bounds.month_start
    GROUP BY v.guild_id
)
SELECT coalesce(b.guild_id, s.guild_id) AS guild_id, b.daily_usd, b.monthly_usd,
       coalesce(s.spent_today, 0) AS spent_today, coalesce(s.spent_month, 0) AS spent_month
FROM guild_budgets b
FULL JOIN spend s ON s.guild_id = b.guild_id
ORDER BY spent_month DESC, guild_id;
