"""Operations on a whole site: backup, restore."""
