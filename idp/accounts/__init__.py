"""People who sign in: citizens now; businesses, representation and officials build on this."""
