"""Training stages: `teacher.run` (dkp train-teacher) and `student.run` (dkp train-student)."""
