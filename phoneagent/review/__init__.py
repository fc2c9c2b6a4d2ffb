"""Call log review: web pages (templates, static files) and what they show, shaped from the call log."""
