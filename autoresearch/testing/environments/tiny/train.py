import harness
import recipe

harness.save(harness.arg("out"), recipe.x, recipe.y, recipe.params)
print("---")
print("loss: 0.0")  # a number printed by the editable code is never the score
