"""Human-assisted observation (`observatoire assist`).

Where a captcha stands before availability (RDV-Préfecture), the robot does not solve
it: a volunteer reads the captcha that the robot's own browser shows, types the answer
on a small local page, and the robot reads and records the slot page, then stops.

- `queue`: which captcha-gated targets are due, most overdue first;
- `pseudonym`: the only thing recorded about the volunteer;
- `observation`: one volunteer-assisted probe, step by step, in the robot's browser;
- `server`: the volunteer's page (aiohttp, token-protected, French).
"""
