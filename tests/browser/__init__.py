"""Real headless Chromium against the real demo: a live hub and department subsites."""
