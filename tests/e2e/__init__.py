"""Browser tests: the example app in headless Chromium, driven by Playwright."""
