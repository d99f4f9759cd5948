CREATE SCHEMA IF NOT EXISTS "jig_runner";
--> statement-breakpoint
CREATE TABLE "jig_runner"."outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"envelope" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
