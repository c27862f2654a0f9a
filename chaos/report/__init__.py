"""What a person reads about a run: text (the terminal report and the plan)."""
