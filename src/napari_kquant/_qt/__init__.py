"""The dock widgets (Qt, magicgui): thin, built from the core's Options."""
