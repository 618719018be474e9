"""The items catalogue: titles, categories and visibility, edited through the API."""
