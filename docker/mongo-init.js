// Runs once, on the first start of an empty data directory: the pipeline's
// own MongoDB user, limited to its database.
db.getSiblingDB("nuannan").createUser({
  user: "nuannan",
  pwd: process.env.MONGO_NUANNAN_PASSWORD,
  roles: [{ role: "readWrite", db: "nuannan" }],
});
