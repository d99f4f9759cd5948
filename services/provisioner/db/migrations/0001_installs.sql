CREATE TABLE "provisioner"."installs" (
	"node_id" integer PRIMARY KEY NOT NULL,
	"bootenv" text NOT NULL,
	"disk" text NOT NULL,
	"requested_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"rebooted_at" timestamp (3) with time zone
);
