CREATE SCHEMA IF NOT EXISTS "dhcp_db";
--> statement-breakpoint
CREATE TABLE "dhcp_db"."outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"envelope" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
