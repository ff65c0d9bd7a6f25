"""Master patient index: one person per resident across every institution (models come with the MPI issue)."""
