"""Who is asked, how, and what happens to the answers."""
