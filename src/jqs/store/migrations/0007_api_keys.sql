-- Placeholder: version 7 holds the API keys' tables, written on another branch. This file
-- only keeps the numbers without gaps until that one replaces it.
SELECT 1;
